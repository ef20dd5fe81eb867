//! CIS Kubernetes Benchmark scanner with TKG expected-failure profiles.
