//! Round-robin reverse proxy library on `http-core`. Built in the rr-proxy issue;
//! this crate only reserves its place in the workspace for now.
#![deny(unsafe_code)]
