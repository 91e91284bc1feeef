//! An array in shared memory: the parent makes an `Array` of five ints, a child sets
//! the middle one to 9999, and after `join` the parent sees the change. The array
//! has a fixed length: an index past its end is an error. Then `003`'s version: an
//! array of ten zeros that the parent fills and a child reads and writes.
//!
//! Source: `000_a4853b86a63cc66d.txt` §(7)3 使用multiprocessing.Array;
//! `003_72388b9411e63b21.txt` 数组. Run it with `just lesson array`.

use mpcore::{Array, Obj, Process};

// ANCHOR: main
/// Runs in the child: writes into the parent's array.
fn func(array: Array<i32>) {
    array.set(2, 9999).expect("index 2 exists"); // Python: array[2] = 9999
    // No append: the length is fixed. One past the end fails, as in Python.
    if let Err(err) = array.set(5, 888) {
        println!("array[5] = 888: {err}");
    }
}

/// `003`'s child: reads element 0, then overwrites it.
fn test(shared_array: Array<i32>) {
    let first = shared_array.get(0).expect("index 0 exists"); // Python: shared_array[0]
    println!("{first}");
    shared_array.set(0, 10).expect("index 0 exists");
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    let myarray = Array::<i32>::new(&[1, 2, 3, 4, 5])?; // Python: Array("i", [1, 2, 3, 4, 5])
    println!("{}", Obj::from(myarray.to_vec())); // Python: print(myarray[:])
    let mut p = Process::new(func, (myarray.clone(),));
    p.start()?;
    p.join()?;
    println!("{}", Obj::from(myarray.to_vec()));

    // 003: ten zeros, filled in by the parent.
    let shared_array = Array::<i32>::zeroed(10)?; // Python: Array(ctypes.c_int, 10)
    for i in 0..shared_array.len() {
        shared_array.set(i, i as i32)?;
    }
    let mut process = Process::new(test, (shared_array.clone(),));
    process.start()?;
    process.join()?;
    println!("{}", Obj::from(shared_array.to_vec()));
    Ok(())
}
// ANCHOR_END: main
