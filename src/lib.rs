//! placeholder
pub mod broker;
pub mod frame;
pub mod hex;
pub mod protocol;
