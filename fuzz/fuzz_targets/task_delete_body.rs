//! The Task.xsd delete body parser on arbitrary bytes: never panics, and a
//! body it accepts names only positive task ids.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = regdesk::face::bdom_xml::parse_delete_body(data) {
        assert!(ids.iter().all(|id| *id > 0), "{ids:?}");
    }
});
