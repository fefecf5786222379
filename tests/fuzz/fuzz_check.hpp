// Invariant checks for the fuzz harnesses: a broken invariant must stop the
// run as a crash so libFuzzer saves the input (an exception or a log line
// would not), and it says which invariant broke.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            std::fprintf(stderr, "fuzz invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            std::abort();                                                                       \
        }                                                                                       \
    } while (0)
