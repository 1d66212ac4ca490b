//! Runtime layer: the streaming pipeline (sources → stages → sinks), queue policies, the control
//! handle and transports. Imports from `core` and `domains`.

pub mod pipeline;
#[cfg(feature = "zenoh")]
pub mod zenoh_node;
