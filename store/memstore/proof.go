package memstore

import (
	"context"
	"errors"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

var errTODO = errors.New("memstore: proofs not implemented yet")

// Declare implements store.Store.
func (s *Store) Declare(ctx context.Context, d store.Declaration) (store.Declared, error) {
	return store.Declared{}, errTODO
}

// AddProof implements store.Store.
func (s *Store) AddProof(ctx context.Context, p store.Proof) (int64, error) { return 0, errTODO }

// UseProof implements store.Store.
func (s *Store) UseProof(ctx context.Context, u store.ProofUse) (store.Proof, error) {
	return store.Proof{}, errTODO
}

// ProofByToken implements store.Store.
func (s *Store) ProofByToken(ctx context.Context, tokenHash string) (store.Proof, error) {
	return store.Proof{}, errTODO
}

// Proofs implements store.Store.
func (s *Store) Proofs(ctx context.Context, domain string) ([]store.Proof, error) {
	return nil, errTODO
}

// OpenProofs implements store.Store.
func (s *Store) OpenProofs(ctx context.Context, at time.Time, afterID int64, limit int) ([]store.Proof, error) {
	return nil, errTODO
}
