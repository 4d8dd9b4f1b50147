//! # testkit
//!
//! Stand-ins for the servers mlsoc ships to that cannot be installed on a
//! test machine: an Elasticsearch `_bulk` receiver and a Splunk HTTP Event
//! Collector. Each follows the documented wire contract
//! (`shared/reference/wire-contracts.md`), error responses included, keeps
//! what it accepted for the test to inspect, and can be told to fail, stall
//! or refuse connections. They bind 127.0.0.1 only.
//!
//! Not for production use; `publish = false`.

pub mod es;
pub mod hec;
