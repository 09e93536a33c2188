//! The GSM 7-bit pack/unpack hot path into caller-provided buffers allocates nothing: counted
//! with a global allocator wrapper.

use postern::codec::gsm7;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;
thread_local! {
    // Per thread: the test harness's own threads allocate too.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn pack_and_unpack_into_buffers_do_not_allocate() {
    let septets = gsm7::to_septets(&"Hello €uro {x} @home ".repeat(500)).unwrap();
    let mut packed = vec![0u8; gsm7::packed_len(septets.len(), 6)];
    let mut out = vec![0u8; septets.len()];
    let before = ALLOCS.with(Cell::get);
    for fill in 0..7u8 {
        let n = gsm7::pack_into(&septets, fill, &mut packed);
        gsm7::unpack_into(&packed[..n], septets.len(), fill, &mut out).unwrap();
        assert_eq!(out, septets);
    }
    assert_eq!(ALLOCS.with(Cell::get) - before, 0, "the hot path allocated");
}
