fn main() {
    mpcore::init();
}
