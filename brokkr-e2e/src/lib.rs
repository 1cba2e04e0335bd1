//! End-to-end, reliability and security tests of the Brokkr workspace, its performance
//! scenarios (`cargo run --release -p brokkr-e2e --example perf -- <scenario>`) and its
//! criterion benches. Nothing to use from here: the code is in `tests/`, `examples/` and
//! `benches/`.
#![forbid(unsafe_code)]
