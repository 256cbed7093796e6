// Errors are collected and reported together, each at its own span.
#[cmdstream::receiver]
pub trait Calc {
    async fn add(&mut self, a: i64, b: i64) -> i64;
    fn sub(&self, a: i64, b: i64) -> i64;
    async fn mul<T>(&self, a: T) -> i64;
}

fn main() {}
