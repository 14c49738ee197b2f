//! Page-based pagination, as Scaleway lists use it: `page` from 1, `page_size` up to 100.

use crate::error::{ApiError, Reason};

/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The page size when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Items per page, 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl Page {
    /// Returns a page from raw values, where 0 means "the default".
    pub fn new(page: u32, page_size: u32) -> Result<Self, ApiError> {
        let page = if page == 0 { 1 } else { page };
        let page_size = if page_size == 0 { DEFAULT_PAGE_SIZE } else { page_size };
        if page_size > MAX_PAGE_SIZE {
            return Err(ApiError::invalid_argument(
                "page_size",
                Reason::Constraint,
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Self { page, page_size })
    }

    /// Returns the SQL `limit`.
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    /// Returns the SQL `offset`.
    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_map_to_offsets_and_oversized_pages_are_refused() {
        let page = Page::new(3, 20).unwrap();
        assert_eq!((page.limit(), page.offset()), (20, 40));
        assert_eq!(Page::new(0, 0).unwrap(), Page::default());
        let error = Page::new(1, 101).unwrap_err();
        assert_eq!(error.violations[0].argument_name, "page_size");
    }
}
