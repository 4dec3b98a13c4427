//! okta-dcr-worker provisions OAuth 2.0 clients in Okta for Axway Amplify Engage credential
//! requests taken from RabbitMQ, and publishes one result per request.
//!
//! Where things live:
//!
//! - [`settings`]: environment variables, validated at start.
//! - [`contract`]: the request and result messages, validation and the mapping to Okta client
//!   metadata.
//! - [`broker`]: the RabbitMQ connection, topology, consumer and confirmed publisher.
//! - [`okta`]: the Okta DCR and app API client, with retry and rate-limit handling.
//! - [`worker`]: the per-request pipeline and the pool of tasks that runs it.
//! - [`admin`]: the health and metrics HTTP endpoint, and the worker's metric names.
//! - [`log_limit`]: folding of repeated log lines.
//! - [`sim`]: `okta-sim`, an in-memory Okta stand-in for demos, tests and benchmarks.
//! - [`cli`]: the `okta-dcr-worker` command line; [`publish`], [`demo`], [`dead_letters`]
//!   (`dead-letters` and `replay`) and [`bench`] are some of its commands.

pub mod admin;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod contract;
pub mod dead_letters;
pub mod demo;
pub mod log_limit;
pub mod okta;
pub mod publish;
pub mod secret;
pub mod settings;
pub mod sim;
pub mod worker;
