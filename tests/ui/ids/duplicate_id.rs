#[cmdstream::receiver]
pub trait Calc {
    #[command(id = 1)]
    async fn add(&self, a: i64, b: i64) -> i64;
    #[command(id = 1)]
    async fn sub(&self, a: i64, b: i64) -> i64;
}

fn main() {}
