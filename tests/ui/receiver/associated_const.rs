#[cmdstream::receiver]
pub trait Calc {
    const LIMIT: u32;
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
