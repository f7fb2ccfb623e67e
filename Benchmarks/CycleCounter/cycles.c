// The counter is a header-only inline function; SwiftPM needs one source file per C target.
#include "CCycleCounter.h"
