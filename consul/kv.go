package consul

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/consul/api"
)

// Entry is what a read learnt about a key besides its value.
type Entry struct {
	// Found says whether the key exists.
	Found bool
	// ModifyIndex is the key's version, for CASJSON; 0 when not found.
	ModifyIndex uint64
	// Index is the index to pass to the next WaitJSON (the query's
	// X-Consul-Index after Consul's reset rules).
	Index uint64
}

// GetJSON reads key and decodes its JSON value into v. It returns the key's
// ModifyIndex for a later CASJSON, or ErrNotFound.
func (c *Client) GetJSON(ctx context.Context, key string, v any) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	e, err := c.getJSON(key, v, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, err
	}
	if !e.Found {
		return 0, fmt.Errorf("consul: get %s: %w", key, ErrNotFound)
	}
	return e.ModifyIndex, nil
}

// WaitJSON is the blocking read of key: it returns once the key changed
// after index (pass 0 for an immediate read, then the Entry.Index of the
// previous call) or Config.WaitTime passed, decoding the value into v when
// the key exists. A return is no promise of a change: compare
// ModifyIndex. A missing key is no error here (Found is false): a watcher
// may wait for a key to appear.
func (c *Client) WaitJSON(ctx context.Context, key string, index uint64, v any) (Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.WaitTime+c.cfg.WaitTime/16+c.cfg.RequestTimeout)
	defer cancel()
	return c.getJSON(key, v, (&api.QueryOptions{WaitIndex: index, WaitTime: c.cfg.WaitTime}).WithContext(ctx))
}

func (c *Client) getJSON(key string, v any, q *api.QueryOptions) (Entry, error) {
	pair, meta, err := c.api.KV().Get(key, q)
	if err != nil {
		return Entry{}, fmt.Errorf("consul: get %s: %w", key, err)
	}
	e := Entry{Index: nextIndex(q.WaitIndex, meta.LastIndex)}
	if pair == nil {
		return e, nil
	}
	e.Found, e.ModifyIndex = true, pair.ModifyIndex
	if err := json.Unmarshal(pair.Value, v); err != nil {
		return e, fmt.Errorf("consul: decode %s: %w", key, err)
	}
	return e, nil
}

// PutJSON writes v as JSON to key unconditionally.
func (c *Client) PutJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("consul: encode %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if _, err := c.api.KV().Put(&api.KVPair{Key: key, Value: data}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: put %s: %w", key, err)
	}
	return nil
}

// CASJSON writes v as JSON to key only if the key's ModifyIndex still is
// modifyIndex; modifyIndex 0 writes only if the key does not exist. A lost
// race returns ErrCASConflict: read again and decide again.
func (c *Client) CASJSON(ctx context.Context, key string, v any, modifyIndex uint64) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("consul: encode %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	ok, _, err := c.api.KV().CAS(&api.KVPair{Key: key, Value: data, ModifyIndex: modifyIndex}, (&api.WriteOptions{}).WithContext(ctx))
	switch {
	case err != nil:
		return fmt.Errorf("consul: cas %s: %w", key, err)
	case !ok:
		return fmt.Errorf("consul: cas %s at index %d: %w", key, modifyIndex, ErrCASConflict)
	}
	return nil
}

// Delete removes key; a missing key is no error.
func (c *Client) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if _, err := c.api.KV().Delete(key, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul: delete %s: %w", key, err)
	}
	return nil
}
