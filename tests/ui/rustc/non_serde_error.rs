#[derive(Debug)]
pub struct OpenError;

#[cmdstream::receiver]
pub trait Files {
    async fn open(&self, name: String) -> Result<u64, OpenError>;
}

fn main() {}
