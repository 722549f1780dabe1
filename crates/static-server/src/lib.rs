//! Static-file server library on `http-core`. Built in the static-server issue;
//! this crate only reserves its place in the workspace for now.
#![deny(unsafe_code)]
