/* flags: the special per-board flag files (skip-eeprom, reprovision-device). */
#ifndef RPI_SB_RECORDS_FLAGS_H
#define RPI_SB_RECORDS_FLAGS_H

#endif
