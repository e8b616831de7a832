//! placeholder
pub mod frame;
pub mod hex;
pub mod protocol;
