//! The embedded store on sled 0.34: objects, a revision log for watches, grouped flushes.
