//! The errors of one request, bounded in number.
//!
//! A request can break a schema as many times as it has values (4,000 unexpected keys are
//! 4,000 errors). The first `limit` errors are mapped into [`FieldError`]s; the rest are only
//! counted, because mapping (locations, messages, inputs) is the expensive part and a client
//! cannot use thousands of entries anyway. The count becomes `errors_omitted` in the 422.

use super::FieldError;

/// At most this many errors are listed unless the config says otherwise
/// (`[server] max_validation_errors`).
pub const DEFAULT_MAX_ERRORS: usize = 100;

/// Errors of one request: at most `limit` listed, the others counted.
#[derive(Debug, Clone)]
pub struct FieldErrors {
    listed: Vec<FieldError>,
    omitted: usize,
    limit: usize,
}

impl FieldErrors {
    /// An empty list that will hold at most `limit` errors (at least one).
    pub fn new(limit: usize) -> Self {
        FieldErrors {
            listed: Vec::new(),
            omitted: 0,
            limit: limit.max(1),
        }
    }

    /// The errors listed, in report order.
    #[cfg(test)]
    pub(crate) fn listed(&self) -> &[FieldError] {
        &self.listed
    }

    /// Every error found, listed or not.
    pub fn total(&self) -> usize {
        self.listed.len() + self.omitted
    }

    /// True when no error was found.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The listed errors and the number omitted.
    pub fn into_parts(self) -> (Vec<FieldError>, usize) {
        (self.listed, self.omitted)
    }

    /// Whether another error would still be listed; when not, callers count instead of
    /// mapping.
    pub(crate) fn has_room(&self) -> bool {
        self.listed.len() < self.limit
    }

    /// How many more errors would be listed.
    pub(crate) fn room(&self) -> usize {
        self.limit - self.listed.len()
    }

    /// Lists `error`, or counts it when the list is full.
    pub(crate) fn push(&mut self, error: FieldError) {
        if self.has_room() {
            self.listed.push(error);
        } else {
            self.omitted += 1;
        }
    }

    /// Lists the error `make` builds, or counts it without building it when the list is full.
    pub(crate) fn push_with(&mut self, make: impl FnOnce() -> FieldError) {
        if self.has_room() {
            self.listed.push(make());
        } else {
            self.omitted += 1;
        }
    }

    /// Counts `n` errors that are not listed.
    pub(crate) fn omit(&mut self, n: usize) {
        self.omitted += n;
    }

    /// The number of errors listed so far: a mark for [`Self::since`].
    pub(crate) fn mark(&self) -> usize {
        self.listed.len()
    }

    /// The errors listed since `mark`, to sort or amend them.
    pub(crate) fn since(&mut self, mark: usize) -> &mut [FieldError] {
        &mut self.listed[mark..]
    }
}
