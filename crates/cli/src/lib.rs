//! Shared glue for the binaries (flags, logging, signals). The binaries
//! `static-server`, `rr-proxy` and `rr-cluster` arrive with their issues.
