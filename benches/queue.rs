//! Queue benchmark (filled in by the benchmark work; see BENCHMARKS.md).
fn main() {}
