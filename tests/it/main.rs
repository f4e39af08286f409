//! The integration tests: one crate, a file per area. Every test starts the
//! real `regdesk` binary on 127.0.0.1:0 with a temporary database.

mod support;

mod bdom;
mod core;

mod crash;
mod epp;
mod epp_rgp;
mod harness;
mod hostile;
mod isolation;
mod layout;
mod lifecycle;
mod mail;
mod network;
mod objects;
mod opensrs;
mod ops;
mod outbound;
mod running;
mod sessions;
mod storage;
mod transfers;
mod webdesk;
mod webhook;
