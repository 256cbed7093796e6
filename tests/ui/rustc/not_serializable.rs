pub struct Handle;

#[cmdstream::receiver]
pub trait Files {
    async fn open(&self, handle: Handle) -> u64;
}

fn main() {}
