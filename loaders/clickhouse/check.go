package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// CheckWritable proves the database can be written: it creates the database
// if missing (as Migrate would), then creates, fills and drops a probe table.
func (s *Store) CheckWritable(ctx context.Context) error {
	if err := s.exec(ctx, "create database "+s.db, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(s.db)); err != nil {
		return err
	}
	probe := s.table(fmt.Sprintf("etl_check_%d", time.Now().UnixNano()))
	if err := s.exec(ctx, "create a probe table in "+s.db, "CREATE TABLE "+probe+" (x UInt8) ENGINE = Memory"); err != nil {
		return err
	}
	err := s.exec(ctx, "insert into a probe table in "+s.db, "INSERT INTO "+probe+" SELECT 1")
	if derr := s.exec(ctx, "drop the probe table in "+s.db, "DROP TABLE IF EXISTS "+probe); err == nil {
		err = derr
	}
	return err
}
