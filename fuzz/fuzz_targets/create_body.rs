//! The `POST /requests` body check on arbitrary bytes: never panics, and a
//! refusal always names what is wrong.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = regdesk::face::native::check_create_body(data) {
        assert!((400..500).contains(&e.status()), "{e:?}");
        assert!(!e.message().is_empty());
    }
});
