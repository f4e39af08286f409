//! The faces regdesk shows its users: the native JSON API, and the XML
//! codecs of the compatibility faces.

pub mod bdom;
pub mod bdom_xml;
pub mod native;
pub mod opensrs;
pub mod ops;
pub mod webhooks;
pub mod xcp_xml;
pub mod xml_tree;
