#include <mpi.h>

// Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros over the addresses
// of its global objects, which Swift cannot import; these return them.

static inline MPI_Comm parawave_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype parawave_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype parawave_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype parawave_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype parawave_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Request parawave_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *parawave_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler parawave_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int parawave_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int parawave_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int parawave_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
