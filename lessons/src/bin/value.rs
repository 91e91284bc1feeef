//! A number in shared memory: the parent makes a `Value` of 10.0, a child sets it
//! to 10.78, and after `join` the parent reads 10.78. Then the typecodes of
//! `003`: `'i'` is an int, `'b'` a signed byte (so `True` reads back as 1), `'d'` a
//! float; a real bool is `ctypes.c_bool` in Python, `Value<bool>` in Rust.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(7)2 使用multiprocessing.Value;
//! `003_72388b9411e63b21.txt` 基本数据类型. Run it with `just lesson value`.

use mpcore::{Obj, Process, Value};

// ANCHOR: main
/// Runs in the child: writes into the parent's number.
fn func(num: Value<f64>) {
    num.set(10.78); // Python: num.value = 10.78
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    let num = Value::<f64>::new(10.0)?; // Python: Value("d", 10.0)
    println!("{}", Obj::from(num.get())); // Python's float repr: 10.0
    let mut p = Process::new(func, (num.clone(),));
    p.start()?;
    p.join()?; // without it, the next line may still read 10.0
    println!("{}", Obj::from(num.get()));

    // 003's three typecodes, and a real bool. The Rust type follows the typecode.
    let int = Value::<i32>::with_typecode('i', 0)?;
    let byte = Value::<i8>::with_typecode('b', i8::from(true))?; // a signed byte
    let float = Value::<f64>::with_typecode('d', 0.0)?;
    let flag = Value::<bool>::new(true)?; // Python: Value(ctypes.c_bool, True)
    println!("Value('i', 0).value = {}", Obj::from(int.get()));
    println!("Value('b', True).value = {}", Obj::from(byte.get()));
    println!("Value('d', 0.0).value = {}", Obj::from(float.get()));
    println!("Value(c_bool, True).value = {}", Obj::from(flag.get()));
    Ok(())
}
// ANCHOR_END: main
