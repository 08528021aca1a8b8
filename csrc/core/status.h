/* status.h — the return codes of every memleash core call.
 *
 * The core never raises: it returns one of these and leaves the structure in the
 * state the called function's comment promises. Only the binding (csrc/py/) turns a
 * status into a Python exception.
 */
#ifndef ML_STATUS_H
#define ML_STATUS_H

typedef enum ml_status {
    ML_OK = 0,              /* done; for look-ups: found */
    ML_NOT_FOUND = 1,       /* look-up: no such key (not an error) */
    ML_ERR_NOMEM = -1,      /* an allocation failed; the structure is unchanged */
    ML_ERR_CALLBACK = -2,   /* a callback reported an error; the structure is consistent */
    ML_ERR_FULL = -3,       /* a fixed limit (entry ids) is reached; unchanged */
    ML_ERR_CHANGED = -4     /* callbacks kept changing the structure under a look-up past
                               a bound; the structure is consistent */
} ml_status;

#endif
