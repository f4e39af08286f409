//! The EPP listener's reading (`epp::frame`) and command parser
//! (`face::epp_xml`) on arbitrary bytes, frame after frame as a session
//! reads them: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(xml) = regdesk::epp::frame::read_frame(&mut rest) {
        let _ = regdesk::face::epp_xml::parse(&xml);
    }
    let _ = regdesk::face::epp_xml::parse(data);
});
