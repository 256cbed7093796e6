use cmdstream::Stream;

#[cmdstream::receiver]
pub trait Sum {
    async fn total(&self, nums: impl Stream<Item = i64>) -> i64;
}

fn main() {}
