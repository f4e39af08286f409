//! Domain-name validation on arbitrary text: never panics, and what it
//! accepts is a lower-case A-label name that validates to itself again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = std::str::from_utf8(data) {
        if let Ok(name) = regdesk::form::domain_name("domain", raw) {
            assert!(name.len() <= 253, "{name:?}");
            assert!(name.is_ascii() && name == name.to_ascii_lowercase(), "{name:?}");
            assert_eq!(regdesk::form::domain_name("domain", &name).ok().as_deref(), Some(name.as_str()));
        }
    }
});
