//! The faces regdesk shows its users: the native JSON API (`native`,
//! `webhooks`, `ops`) and the compatibility faces (`opensrs`, `bdom`). Each
//! parses its wire format, calls `desk`, and writes its answer; no face
//! imports another. Beside them, helpers any face may use: the XML codecs
//! (`xml_tree`, `xcp_xml`, `bdom_xml`) and the JSON arguments
//! (`json_args`).

pub mod bdom;
pub mod bdom_xml;
pub mod epp;
pub mod epp_xml;
pub mod json_args;
pub mod native;
pub mod objects;
pub mod opensrs;
pub mod ops;
pub mod session;
pub mod web;
pub mod webhooks;
pub mod xcp_xml;
pub mod xml_tree;
