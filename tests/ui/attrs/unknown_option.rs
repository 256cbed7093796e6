#[cmdstream::receiver]
pub trait Calc {
    #[command(retries = 3)]
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
