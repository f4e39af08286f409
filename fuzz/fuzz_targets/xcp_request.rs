//! The XCP envelope parser (`POST /opensrs`) on arbitrary bytes: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = regdesk::face::xcp_xml::parse_request(data);
});
