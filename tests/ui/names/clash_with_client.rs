#[cmdstream::receiver]
pub trait Mailer {
    async fn send(&self, to: String, body: String) -> bool;
}

fn main() {}
