def test_x(client, http):
    for m in ["mock/embed","up/text-embedding-3-small","gem/text-embedding-004"]:
      for fmt in ["base64"]:
        r=http.post("/v1/embeddings",headers={"authorization":"Bearer sk-tollgate-master-for-sdk-tests"},json={"model":m,"input":"a","encoding_format":fmt})
        print(m, r.status_code, r.text[:300])
    assert 0
