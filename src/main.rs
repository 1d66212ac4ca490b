//! The `hdpf` command-line interface.

fn main() {
    println!("hdpf");
}
