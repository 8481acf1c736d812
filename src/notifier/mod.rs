//! SMS delivery, the edge: the outbox [`sender`] task and the [`gateway`] client (its
//! settings are the daemon's `[sms]` section, parsed in [`crate::sms::config`]).
//!
//! Delivery is a transactional outbox. The store writes an `outbox` row in the same
//! transaction as the state change that causes it (a request accepted, a request ended);
//! the [`sender`] task delivers due rows to the SMS gateway behind the
//! [`gateway::SmsGateway`] trait, with the outbox row's reference as the gateway's
//! idempotency key, retries with exponential backoff, and never sends during quiet hours.
//! What to send and whether is decided by the rules in [`crate::sms`]; the ETA a notice
//! tells comes from [`crate::eta`], as the API's does.

pub mod gateway;
pub mod sender;

pub use sender::start;
