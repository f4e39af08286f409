//! The Task.xsd delete body parser on arbitrary bytes: never panics, and
//! every task id it accepts is an `xs:int` (negative ids are valid against
//! the schema; they name no task).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = regdesk::face::bdom_xml::parse_delete_body(data) {
        assert!(
            ids.iter().all(|id| i32::try_from(*id).is_ok()),
            "{ids:?}"
        );
    }
});
