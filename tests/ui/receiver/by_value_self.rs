#[cmdstream::receiver]
pub trait Counter {
    async fn take(self) -> u64;
}

fn main() {}
