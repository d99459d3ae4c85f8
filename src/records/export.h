/* export: CSV and JSON views of the manufacturing records. */
#ifndef RPI_SB_RECORDS_EXPORT_H
#define RPI_SB_RECORDS_EXPORT_H

#endif
