//! The casework rules: what a message means for a ticket, who answers it and what may leave.
//! They read and write the store but never the network (the process stage asks `spamd` and
//! hands its answer in); the process stage calls them once per message, inside one
//! transaction.
//!
//! - `threading`: which ticket a message belongs to, and duplicates;
//! - `reply`: a caseworker's answer by mail (reply tokens, commands like `#close`);
//! - `gate`: the one outbox gate every answer to a requester passes;
//! - `token`: signed reply tokens; `auth`: whether a sender is who the From says;
//! - `spam`: the spam verdict, the classifier and held spam;
//! - `rota`, `route`, `assign`: who is on duty, who gets a ticket, and telling them;
//! - `mail_loops`: mail-loop safety (auto-replies, rate windows, suppression);
//! - `admin`, `report`, `purge`: the team, ticket summaries, retention and erasure.

pub(crate) mod admin;
pub(crate) mod assign;
pub(crate) mod auth;
pub mod gate;
pub(crate) mod mail_loops;
pub mod purge;
pub mod reply;
pub(crate) mod report;
pub(crate) mod rota;
pub(crate) mod route;
pub mod spam;
pub(crate) mod threading;
pub(crate) mod token;
