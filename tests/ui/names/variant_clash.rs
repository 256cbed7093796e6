#[cmdstream::receiver]
pub trait Calc {
    async fn add_one(&self, a: i64) -> i64;
    async fn addOne(&self, a: i64) -> i64;
}

fn main() {}
