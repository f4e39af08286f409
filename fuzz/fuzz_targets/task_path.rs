//! The task path parser (`/bdom/task/...`) on arbitrary text: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = regdesk::face::bdom_xml::parse_task_path(path);
    }
});
