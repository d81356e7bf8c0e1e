// The one translation unit per test binary that provides CAF's test runner main.
#include "caf/test/unit_test_impl.hpp"
