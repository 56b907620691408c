//! One fetch of a value for several readers within a scope. Every host call that returns data costs two
//! crossings of the wasm boundary (the call, and the host's call back into `proxy_on_memory_allocate`), the most
//! expensive thing a filter does per request; a composite filter (the suite) whose parts each read the request
//! headers reads them from the proxy once.

/// A value fetched at most once while a scope is open, and on every read outside one.
#[derive(Debug, Default)]
pub struct FetchOnce<T> {
    /// `None`: no scope open. `Some(None)`: open, not fetched yet (or dropped by an update).
    scope: Option<Option<T>>,
}

impl<T: Clone> FetchOnce<T> {
    pub const fn new() -> Self {
        Self { scope: None }
    }

    /// Opens a scope; reads share one fetch until [`close`](Self::close), or an [`update`](Self::update) that
    /// cannot tell the new value.
    pub fn open(&mut self) {
        self.scope = Some(None);
    }

    pub fn close(&mut self) {
        self.scope = None;
    }

    /// The value changed at its source as `change` says: a held value is changed the same way (in place), or
    /// dropped when `change` cannot tell (`false`) and fetched again by the next read.
    pub fn update(&mut self, change: impl FnOnce(&mut T) -> bool) {
        if let Some(held) = &mut self.scope
            && let Some(value) = held
            && !change(value)
        {
            *held = None;
        }
    }

    /// The value, from the scope's fetch when there is one. A failed fetch is not kept.
    pub fn get<E>(&mut self, fetch: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        match &mut self.scope {
            None => fetch(),
            Some(Some(value)) => Ok(value.clone()),
            Some(held) => {
                let value = fetch()?;
                *held = Some(value.clone());
                Ok(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn counting(calls: &Cell<u32>) -> impl FnOnce() -> Result<u32, ()> + '_ {
        move || {
            calls.set(calls.get() + 1);
            Ok(calls.get())
        }
    }

    #[test]
    fn an_update_changes_the_held_value_or_drops_it() {
        let calls = Cell::new(0);
        let mut once = FetchOnce::new();
        once.open();
        assert_eq!(once.get(counting(&calls)), Ok(1));
        once.update(|v| {
            *v += 10;
            true
        });
        assert_eq!(once.get(counting(&calls)), Ok(11), "changed in place, not fetched");
        once.update(|_| false);
        assert_eq!(once.get(counting(&calls)), Ok(2), "dropped: fetched again");
        once.close();
        once.update(|v| {
            *v += 10;
            true
        });
        assert_eq!(once.get(counting(&calls)), Ok(3), "no scope: nothing held");
    }

    #[test]
    fn outside_a_scope_every_read_fetches() {
        let calls = Cell::new(0);
        let mut once = FetchOnce::new();
        assert_eq!(once.get(counting(&calls)), Ok(1));
        assert_eq!(once.get(counting(&calls)), Ok(2));
    }

    #[test]
    fn inside_a_scope_reads_share_one_fetch_until_invalidated() {
        let calls = Cell::new(0);
        let mut once = FetchOnce::new();
        once.open();
        assert_eq!(once.get(counting(&calls)), Ok(1));
        assert_eq!(once.get(counting(&calls)), Ok(1));
        once.update(|_| false);
        assert_eq!(once.get(counting(&calls)), Ok(2));
        assert_eq!(once.get(counting(&calls)), Ok(2));
        once.close();
        assert_eq!(once.get(counting(&calls)), Ok(3));
        // A new scope does not see the last one's value.
        once.open();
        assert_eq!(once.get(counting(&calls)), Ok(4));
    }

    #[test]
    fn a_failed_fetch_is_not_kept() {
        let mut once = FetchOnce::<u32>::new();
        once.open();
        assert_eq!(once.get(|| Err("down")), Err("down"));
        assert_eq!(once.get(|| Ok::<_, &str>(7)), Ok(7));
        assert_eq!(once.get(|| Err("not called")), Ok(7));
    }

    #[test]
    fn invalidating_outside_a_scope_does_not_open_one() {
        let calls = Cell::new(0);
        let mut once = FetchOnce::new();
        once.update(|_| false);
        assert_eq!(once.get(counting(&calls)), Ok(1));
        assert_eq!(once.get(counting(&calls)), Ok(2));
    }
}
