//! The one integration test binary.

mod check_config;
mod store_crash;
