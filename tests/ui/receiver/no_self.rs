#[cmdstream::receiver]
pub trait Counter {
    async fn make() -> u64;
}

fn main() {}
