//! RESP wire format for raftkv: parsing requests (multibulk and inline) into argument
//! vectors, turning argument vectors into typed [`Command`]s with Redis's exact error texts
//! (the command table and one parser file per family in [`cmd`]), and encoding [`Reply`]
//! values as RESP2 or RESP3. Pure: no IO, no async runtime.

pub mod cmd;
pub mod command;
pub mod encode;
pub mod relayed;
pub mod reply;
pub mod request;
pub mod slot;

pub use command::*;
pub use reply::{Protocol, Reply};
