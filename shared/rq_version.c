/*
 * The release (see rq_version.h). Only this file is built with
 * -DRQ_VERSION, so a new version rebuilds one object.
 */
#include "rq_version.h"

#ifndef RQ_VERSION
#error "RQ_VERSION is set by the Makefile"
#endif

const char *rq_version(void)
{
    return RQ_VERSION;
}
