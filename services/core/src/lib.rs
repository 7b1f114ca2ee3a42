//! Centinela's domain: what buttons, cameras, brigades and incidents are, which moves between
//! their states are legal, and how a brigade is chosen for an incident.
//!
//! This crate is pure. It does no IO, reads no clock and draws no random numbers: time comes in
//! as a [`time::Timestamp`] argument, so the same code runs in the node, in the demo and inside
//! deterministic simulations, and every decision can be replayed from its inputs. Every other
//! Centinela crate builds on it; it depends on none of them.
//!
//! # Layout
//! - [`ids`]: validated identifier newtypes (`ButtonId`, `BrigadeId`, `IncidentId`, ...).
//! - [`time`]: `Timestamp`, milliseconds since the unix epoch, passed in by callers.
//! - [`geo`]: validated `Position`s, haversine distance, unit-sphere vectors for the index.
//! - [`alert`]: tamper and offline alerts that stay until a supervisor clears them.
//! - [`button`]: panic buttons and their health (online, offline, tampered).
//! - [`camera`]: PTZ cameras, their aim/on-target cycle and recording bookmarks.
//! - [`device_audit`]: the hash-chained, sealed trail of a device's alert clearances.
//! - [`brigade`]: Serenazgo units: mode, capabilities, and the assignment state machine.
//! - [`incident`]: incidents from first press to closure, with their audit trail.
//! - [`handoff`]: incidents handed to other agencies as CAP messages, and their delivery.
//! - [`dispatch`]: dispatch policy, brigade ranking (R-tree index and linear reference) and the
//!   queue of incidents waiting for a unit.
//! - [`scenario`]: the buttons, cameras and brigades a node starts with, from TOML.
//! - [`seal`]: the audit key and the keyed seal over an incident's chain head and fields.
//! - [`text`]: text from outside made safe to log and store (control characters escaped).
//! - [`posts`]: where brigades should wait: maximal covering (exact branch and bound, lazy
//!   greedy with its (1 − 1/e) bound).
//! - [`limits`]: every bound and timeout, each with its reason.
//!
//! # Conventions
//! State machines are enums whose transitions are methods that refuse illegal moves with a
//! per-module `Error` naming the entity, where it was, and why; a refused transition leaves the
//! value unchanged. Enums serialize in snake_case: those strings are part of the CLI's JSON
//! contract.

pub mod alert;
pub mod brigade;
pub mod button;
pub mod camera;
pub mod device_audit;
pub mod dispatch;
pub mod geo;
pub mod handoff;
pub mod ids;
pub mod incident;
pub mod limits;
pub mod posts;
pub mod scenario;
pub mod seal;
pub mod text;
pub mod time;
